# Nightshift on the official Apache Airflow image, extended the way that image documents:
# pip packages are installed as the `airflow` user (never as root), on top of the Airflow
# the image already ships. The tag's Airflow and Python versions must match requirements.txt
# (apache-airflow==3.3.2) and pyproject.toml (Python 3.11); tests/unit/test_deploy_files.py
# checks both, and the first RUN below refuses to build if the image disagrees.
#
# Layers are ordered for the build cache: the pinned dependencies first (they change
# rarely), the project's own code last. See docs/deploy.md.
FROM apache/airflow:3.3.2-python3.11

USER airflow
WORKDIR /opt/airflow

# 1. Dependencies: requirements.txt pinned and resolved against the full constraints.txt,
#    plus what the CeleryExecutor needs (not in requirements.txt: local runs use the
#    LocalExecutor). These pins were resolved together with requirements.txt + constraints.txt
#    (celery 5.7 is out: it requires python-dateutil 2.9, constraints.txt pins 4.0).
COPY --chown=airflow:0 requirements.txt constraints.txt /opt/airflow/
RUN grep -qx "apache-airflow==${AIRFLOW_VERSION}" /opt/airflow/requirements.txt \
    || { echo "base image ships Airflow ${AIRFLOW_VERSION}; requirements.txt pins another version" >&2; exit 1; }
RUN pip install --no-cache-dir \
        -r /opt/airflow/requirements.txt \
        -c /opt/airflow/constraints.txt \
        apache-airflow-providers-celery==3.26.0 \
        celery==5.6.3 \
        kombu==5.6.2 \
        redis==6.4.0

# 2. The project, installed as any provider is: the built distribution (not editable), whose
#    entry points register the provider, its plugin and `airflow nightshift db-upgrade`; the
#    devtools distribution beside it serves the compose file's emulator profile. The workload
#    definitions go beside the DAGs folder, where [nightshift] workloads_folder looks by default.
COPY --chown=airflow:0 pyproject.toml README.md /opt/airflow/nightshift-src/
COPY --chown=airflow:0 src/ /opt/airflow/nightshift-src/src/
COPY --chown=airflow:0 devtools/ /opt/airflow/nightshift-src/devtools/
RUN pip install --no-cache-dir --no-deps /opt/airflow/nightshift-src /opt/airflow/nightshift-src/devtools \
    && mkdir -p /opt/airflow/auth \
    && python -c "import nightshift, emulator" \
    && nightshift --help > /dev/null
COPY --chown=airflow:0 include/ /opt/airflow/include/
COPY --chown=airflow:0 workloads/ /opt/airflow/workloads/
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
