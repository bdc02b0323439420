"""API keys as use cases: make, list, revoke, bootstrap, and authenticate a
request's key through a short in-process cache.

The cache holds each key's row for `cache_seconds`, so that authenticating
costs a SHA-256 and a dictionary lookup on almost every request, and a key
revoked in another process stops working within that time (in this process,
at once). Unknown key ids are cached too, so a flood of made-up keys does
not become a flood of queries.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ledger.engine import access, audit, errors, paging, reach, rules
from ledger.engine.access import Actor, ApiKey, IssuedKey, NewKey, StoredKey
from ledger.engine.audit import AuditRecord
from ledger.engine.limits import Limits
from ledger.engine.model import Page

if TYPE_CHECKING:
    from ledger.engine.ports import KeyStore

# More distinct key ids than this in one cache period empty the cache (it is
# refilled from the database); bounds the memory unknown ids can take.
MAX_CACHED_KEYS = 10_000


class Keys:
    def __init__(
        self,
        store: KeyStore,
        limits: Limits,
        cache_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.limits = limits
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._cache: dict[str, tuple[float, StoredKey | None]] = {}

    async def authenticate(self, key: str) -> ApiKey:
        """The live key `key` is. Raises Unauthenticated (malformed, unknown,
        wrong secret, revoked), with a detail that never repeats the key."""
        key_id = access.key_id_of(key)
        stored = await self._stored(key_id)
        if stored is None or not access.matches(stored, key):
            raise errors.Unauthenticated(f"API key {key_id!r} is not one this ledger issued")
        if stored.key.revoked_at is not None:
            raise errors.Unauthenticated(f"API key {key_id!r} was revoked")
        return stored.key

    def known_missing(self, key_id: str) -> bool:
        """Whether this process looked `key_id` up lately and found no key:
        answered without the database."""
        cached = self._cache.get(key_id)
        return cached is not None and cached[1] is None and cached[0] > self.clock()

    async def _stored(self, key_id: str) -> StoredKey | None:
        now = self.clock()
        cached = self._cache.get(key_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        stored = await self.store.get_key(key_id)
        if len(self._cache) >= MAX_CACHED_KEYS:
            self._cache.clear()
        self._cache[key_id] = (now + self.cache_seconds, stored)
        return stored

    async def create(self, cmd: NewKey, actor: Actor) -> IssuedKey:
        """Make a key and return it with its secret, shown this once. It
        may hold no scope `actor` lacks and reach no account `actor` does
        not. Raises InvalidValue, Forbidden."""
        access.check_new_key(cmd)
        reach.check_ceiling(actor, cmd.scopes, cmd.accounts)
        key_id, key = access.new_key()
        made = await self.store.insert_key(
            key_id, access.digest(key), cmd, _created(actor, key_id, cmd)
        )
        return _issued(made, key)

    async def bootstrap(self, key: str | None) -> IssuedKey | None:
        """When the database holds no key at all: an admin key with every
        scope, `key` itself if given (it must be well formed), else a new
        one. None when some key exists already (in any process: the store
        admits the first key once). Raises Unauthenticated for a malformed
        `key`."""
        if key is not None:
            key_id = access.key_id_of(key)
        else:
            key_id, key = access.new_key()
        cmd = NewKey(
            name=access.BOOTSTRAP_NAME,
            client_id=access.BOOTSTRAP_CLIENT,
            scopes=list(access.SCOPES),
        )
        record = _created(access.system("bootstrap"), key_id, cmd)
        made = await self.store.insert_first_key(key_id, access.digest(key), cmd, record)
        return None if made is None else _issued(made, key)

    async def get(self, key_id: str, actor: Actor = access.DIRECT) -> ApiKey:
        """A key under `actor`'s ceiling. Raises KeyNotFound (for one above
        it too: its existence is not confirmed)."""
        stored = await self.store.get_key(key_id) if access.known_key_id(key_id) else None
        if stored is None or not _under(actor, stored.key):
            raise errors.KeyNotFound(f"no API key {key_id!r}", key_id=key_id)
        return stored.key

    async def page(
        self, cursor: str | None, limit: int | None = None, actor: Actor = access.DIRECT
    ) -> Page:
        """Keys under `actor`'s ceiling, in id order. Raises InvalidCursor,
        InvalidValue."""
        size = paging.page_size(limit, self.limits.default_page_size, self.limits.max_page_size)
        return await reach.filtered_page(
            self.store.list_keys, lambda k: _under(actor, k), cursor, size, lambda k: k.id
        )

    async def revoke(self, key_id: str, actor: Actor) -> ApiKey:
        """Revoke a key under `actor`'s ceiling (revoking it again changes
        nothing). It stops working in this process at once, in others
        within the cache time; the webhook endpoints it registered pause in
        the same transaction. Raises KeyNotFound."""
        key = await self.get(key_id, actor)
        record = AuditRecord(
            actor=actor,
            action=audit.KEY_REVOKE,
            outcome="revoked",
            target=key_id,
            reach=None if key.accounts is None else tuple(key.accounts),
        )
        found = await self.store.revoke_key(key_id, record)
        if found is None:
            raise errors.KeyNotFound(f"no API key {key_id!r}", key_id=key_id)
        self._cache.pop(key_id, None)
        return found

    async def still_live(self, key_id: str) -> bool:
        """Whether the key is known and not revoked, as this process's cache
        knows it (at most `cache_seconds` old): for streams and long polls
        that outlive the request that authenticated them."""
        stored = await self._stored(key_id)
        return stored is not None and stored.key.revoked_at is None


def _under(actor: Actor, key: ApiKey) -> bool:
    return reach.within_ceiling(actor, key.scopes, key.accounts)


def _created(actor: Actor, key_id: str, cmd: NewKey) -> AuditRecord:
    """The audit row of a key's creation: it concerns what the key reaches."""
    return AuditRecord(
        actor=actor,
        action=audit.KEY_CREATE,
        outcome="created",
        target=key_id,
        fingerprint=rules.fingerprint("key", cmd),
        reach=None if cmd.accounts is None else tuple(cmd.accounts),
    )


def _issued(made: ApiKey, key: str) -> IssuedKey:
    return IssuedKey(**{f: getattr(made, f) for f in ApiKey.__struct_fields__}, key=key)
