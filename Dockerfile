# One image for web, worker, beat and the demo agent.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY dashboard dashboard
COPY agents agents
COPY planner planner
COPY templates templates
COPY manage.py ./
# /var/lib/wattwise/imports: uploaded intensity files wait there for the worker (a volume shared by web and
# worker in docker-compose.yml; a new volume takes this directory's owner).
# pip compiles what it installs; the app's processes import its own packages from /app, compiled here too,
# since PYTHONDONTWRITEBYTECODE would have every start compile them again.
RUN pip install --no-cache-dir './agents[broker]' . && python -m compileall -q dashboard planner && useradd --create-home wattwise \
    && mkdir -p /var/lib/wattwise/imports && chown -R wattwise /var/lib/wattwise
USER wattwise
EXPOSE 8000
CMD ["gunicorn", "dashboard.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3"]
