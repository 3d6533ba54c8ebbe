# One image for every function. Each Cloud Run service selects its function with FUNCTION_TARGET (and
# FUNCTION_SOURCE), which `python -m infra.deploy` sets from infra/functions.toml; see infra/entrypoint.sh.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH=/app \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=8080
WORKDIR /app

COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY shared/ shared/
COPY functions/ functions/
COPY infra/ infra/
COPY supabase/ supabase/
RUN chmod 755 infra/entrypoint.sh \
    && python -m compileall -q shared functions infra \
    && useradd --system --uid 10001 --home-dir /app muse
USER muse

EXPOSE 8080
ENTRYPOINT ["/app/infra/entrypoint.sh"]
