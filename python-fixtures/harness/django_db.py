"""The django-db result backend's tables as the goldens and the compat tests see them.

`install_log` adds a log table and triggers to a migrated PostgreSQL database, so that every
INSERT, UPDATE and DELETE on django-celery-results' three tables is recorded in order;
`read_log` reads the writes back with their volatile values masked (`Masker`): task and
group ids become `<id:N>` (numbered in order of appearance), dates `set` or NULL, the
worker's node name `<hostname>`, pids `<pid>`, traceback frames `<frame>`.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent
TABLES = ("taskresult", "groupresult", "chordcounter")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

LOG_DDL = """
CREATE TABLE capture_log (n BIGSERIAL PRIMARY KEY, tbl TEXT, op TEXT, row JSONB);
CREATE FUNCTION capture_write() RETURNS trigger AS $$
BEGIN
  INSERT INTO capture_log (tbl, op, row) VALUES (TG_TABLE_NAME, TG_OP,
    to_jsonb(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END));
  RETURN NULL;
END $$ LANGUAGE plpgsql;
"""


def migrate(env):
    """`manage.py migrate` into the database the DJANGO_DB_* variables of `env` name."""
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
                   cwd=FIXTURES, env={**os.environ, **env}, check=True)


def install_log(conn):
    """The log table and a trigger on each of the three tables (psycopg2 connection)."""
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute(LOG_DDL)
    for t in TABLES:
        cur.execute(f"CREATE TRIGGER capture_{t} AFTER INSERT OR UPDATE OR DELETE ON "
                    f"django_celery_results_{t} FOR EACH ROW EXECUTE FUNCTION capture_write()")


class Masker:
    """Replaces volatile values by stable placeholders, consistently within one case."""

    def __init__(self, hostname):
        self.ids = {}
        self.hostname = hostname

    def id(self, value):
        if value not in self.ids:
            self.ids[value] = f"<id:{len(self.ids)}>"
        return self.ids[value]

    def text(self, s):
        if s is None:
            return None
        s = UUID.sub(lambda u: self.id(u.group(0)), s)
        s = s.replace(self.hostname, "<hostname>")
        s = re.sub(r'"pid": \d+', '"pid": "<pid>"', s)
        s = re.sub(r'File "[^"]+", line \d+, in \S+', "<frame>", s)
        return s


def mask_row(row, m):
    """A logged row with its volatile values masked. The dates come from two clocks
    (Python's for `date_created`/`date_done`, the database's `NOW()` for `date_started`), so
    only whether each is set is a fact."""
    row = dict(row)
    row.pop("id", None)
    for k in ("date_created", "date_started", "date_done"):
        if k in row:
            row[k] = "set" if row[k] else None
    for k, v in list(row.items()):
        if isinstance(v, str) and not k.startswith("date_"):
            row[k] = m.text(v)
    return row


def read_log(conn, after=0):
    """[(n, table, op, row)] logged after `n`."""
    cur = conn.cursor()
    cur.execute("SELECT n, tbl, op, row FROM capture_log WHERE n > %s ORDER BY n", (after,))
    return cur.fetchall()


def masked_writes(log, hostname):
    """The writes of `log` as the goldens hold them."""
    m = Masker(hostname)
    return [{"table": tbl, "op": op, "row": mask_row(row, m)} for _n, tbl, op, row in log]
