# The ledger service image (with the `ops` extra: Locust, for the load generators).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY src ./src
COPY schema ./schema
RUN pip install --no-cache-dir '.[ops]' \
    && useradd --system --uid 10001 --home /app ledger
USER ledger
EXPOSE 8000
ENTRYPOINT ["ledger"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
