"""Local development environment: a throwaway PostgreSQL cluster and the Airflow settings around it.

Nothing here is imported by DAGs, operators or the triggerer; it backs `nightshift dev …`,
`make test`, `make demo` and `make up`.
"""
