"""polars frames in and out of PostgreSQL, for the offline stores of the production profile.

Writes go through COPY (CSV rendered by polars), a hundred times faster than
row inserts; reads go through psycopg into polars with the caller's schema, so
an empty result still has typed columns.
"""

from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import polars as pl

if TYPE_CHECKING:
    import psycopg
    import sqlalchemy as sa

UTC_DATETIME = pl.Datetime("us", "UTC")
# polars dtype → the column type it is stored as.
_PG_TYPES: dict[type[pl.DataType], str] = {
    pl.String: "text",
    pl.Int64: "bigint",
    pl.Int32: "bigint",
    pl.Float64: "double precision",
    pl.Boolean: "boolean",
    pl.Date: "date",
    pl.Datetime: "timestamptz",
    pl.List: "jsonb",
}


def is_postgres(url: str | None) -> bool:
    return bool(url) and str(url).split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")


def sqlalchemy_url(url: str) -> str:
    """A PostgreSQL URL with the psycopg 3 driver (plain postgresql:// as libpq tools write it)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def connection_params(url: str) -> dict[str, Any]:
    """host, port, database, user, password and sslmode of a PostgreSQL URL."""
    from sqlalchemy.engine import make_url

    parsed = make_url(sqlalchemy_url(url))
    query = {k: (v if isinstance(v, str) else v[0]) for k, v in parsed.query.items()}
    return {
        "host": parsed.host or "localhost",
        "port": int(parsed.port or 5432),
        "database": parsed.database or "postgres",
        "user": unquote(parsed.username or "postgres"),
        "password": unquote(parsed.password or ""),
        # A server without TLS (local, CI) refuses Feast's default "require".
        "sslmode": query.get("sslmode", "prefer"),
    }


def quoted(schema: str, table: str) -> str:
    return f'"{schema}"."{table}"'


def pg_type(dtype: pl.DataType) -> str:
    for base, name in _PG_TYPES.items():
        if isinstance(dtype, base) or dtype == base:
            return name
    raise TypeError(f"no PostgreSQL column type for {dtype}")


def _csv_ready(frame: pl.DataFrame) -> pl.DataFrame:
    """List columns as JSON text (jsonb columns take it); everything else renders as PostgreSQL reads it."""
    lists = [name for name, dtype in frame.schema.items() if isinstance(dtype, pl.List)]
    if not lists:
        return frame
    # json_encode of a one-field struct gives {"name":<json>}; the value is the JSON array polars wrote.
    return frame.with_columns(
        pl.when(pl.col(name).is_not_null())
        .then(pl.struct(name).struct.json_encode().str.slice(len(name) + 4).str.strip_suffix("}"))
        .alias(name)
        for name in lists
    )


def driver_connection(conn: "sa.Connection") -> "psycopg.Connection[Any]":
    raw = conn.connection.driver_connection
    assert raw is not None
    return raw  # type: ignore[return-value]


def _raw(conn: Any) -> "psycopg.Connection[Any]":
    import sqlalchemy as sa

    return driver_connection(conn) if isinstance(conn, sa.Connection) else conn  # type: ignore[no-any-return]


def copy_frame(conn: Any, table: str, frame: pl.DataFrame) -> int:
    """COPY `frame` into `table` (already quoted) in the transaction of a SQLAlchemy or psycopg connection.

    Returns the rows copied.
    """
    if frame.is_empty():
        return 0
    columns = ", ".join(f'"{c}"' for c in frame.columns)
    data = _csv_ready(frame).write_csv(include_header=False).encode()
    with _raw(conn).cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT csv)") as cp:
        cp.write(data)
    return frame.height


def read_frame(conn: Any, query: str, schema: dict[str, Any], params: Any = None) -> pl.DataFrame:
    """Run `query` (psycopg placeholders) on a SQLAlchemy or psycopg connection; columns typed by `schema`.

    List columns are selected as JSON text and decoded here; timestamps come back in UTC.
    """
    with _raw(conn).cursor() as cur:
        cur.execute(query, params)
        names = [c.name for c in cur.description or ()]
        rows = cur.fetchall()
    if list(schema) != names:
        raise ValueError(f"query columns {names} differ from the schema's {list(schema)}")
    text = {n: pl.String() if isinstance(t, pl.List) else t for n, t in schema.items()}
    frame = pl.DataFrame(rows, schema={n: _loose(t) for n, t in text.items()}, orient="row")
    fixes = []
    for name, dtype in schema.items():
        if isinstance(dtype, pl.List):
            fixes.append(pl.col(name).str.json_decode(dtype))
        elif isinstance(dtype, pl.Datetime):
            fixes.append(pl.col(name).dt.convert_time_zone("UTC").dt.cast_time_unit("us"))
    return frame.with_columns(fixes) if fixes else frame


def _loose(dtype: Any) -> Any:
    # psycopg returns aware datetimes in the session's zone; polars keeps it, converted above.
    return pl.Datetime("us", "UTC") if isinstance(dtype, pl.Datetime) else dtype
