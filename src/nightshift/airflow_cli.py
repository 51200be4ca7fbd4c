"""``airflow nightshift db-upgrade``: the ledger schema at deploy time, beside ``airflow db migrate``.

Registered through the provider info's ``cli`` list, so a deployment's init step (a Helm
migration job, a compose ``airflow-init`` service) runs it with the same image and
configuration as every other Airflow command.
"""

from __future__ import annotations


def db_upgrade(args) -> None:
    from nightshift.cli import main

    raise SystemExit(main(["db", "upgrade"] + (["--dsn", args.dsn] if args.dsn else [])))


def db_check(args) -> None:
    from nightshift.cli import main

    raise SystemExit(main(["db", "check"] + (["--dsn", args.dsn] if args.dsn else [])))


def get_cli_commands() -> list:
    from airflow.cli.cli_config import ActionCommand, Arg, GroupCommand

    dsn = Arg(("--dsn",), help="a postgresql:// URL (default: the [nightshift] db_conn_id connection)")
    return [GroupCommand(name="nightshift", help="Nightshift's ledger schema in the application database",
                         subcommands=(
                             ActionCommand(name="db-upgrade", help="create or migrate the ledger schema (idempotent)",
                                           func=db_upgrade, args=(dsn,)),
                             ActionCommand(name="db-check", help="exit 1 when ledger migrations are pending",
                                           func=db_check, args=(dsn,)),
                         ))]
