"""Feast's PostgreSQL offline store, with its point-in-time query run under a planner setting it needs.

Feast's query joins CTEs whose row counts the planner cannot estimate (filters on
sub-query parameters): it guesses a couple of rows and joins the feature rows of
some ten thousand entity rows by nested loops, comparing billions of pairs (six
minutes for 40k training rows, measured). Without nested loops the same query
hashes and takes seconds. Everything else is Feast's: this subclass only runs
the retrieval job's query with `enable_nestloop = off` in its own session, and
reads its rows through a server-side cursor, FETCH_ROWS at a time, into Arrow
record batches: Feast's job holds every row as Python tuples at once (some
60 objects per training row, gigabytes for a training set of a million rows).

Selected by the store configuration (features.store) with the type
"features.pg_offline_store.FitrecPostgreSQLOfflineStore".
"""

from typing import Any, Literal

import pyarrow as pa
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres import (
    PostgreSQLOfflineStore,
    PostgreSQLOfflineStoreConfig,
    PostgreSQLRetrievalJob,
)
from feast.infra.utils.postgres.connection_utils import _get_conn
from feast.type_map import pg_type_code_to_arrow

STORE_TYPE = "features.pg_offline_store.FitrecPostgreSQLOfflineStore"
FETCH_ROWS = 50_000


class FitrecPostgreSQLOfflineStoreConfig(PostgreSQLOfflineStoreConfig):
    type: Literal["features.pg_offline_store.FitrecPostgreSQLOfflineStore"] = STORE_TYPE  # type: ignore[assignment]


class HashJoinRetrievalJob(PostgreSQLRetrievalJob):
    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:
        with self._query_generator() as query, _get_conn(self.config.offline_store) as conn:
            conn.read_only = True
            with conn.cursor() as setup:
                setup.execute("SET enable_nestloop = off")
            # A named (server-side) cursor: rows arrive FETCH_ROWS at a time, not all at once.
            with conn.cursor(name="fitrec_point_in_time") as cur:
                cur.execute(query)
                schema: pa.Schema | None = None
                batches: list[pa.RecordBatch] = []
                while True:
                    rows = cur.fetchmany(FETCH_ROWS)
                    if schema is None:
                        fields = [(c.name, pg_type_code_to_arrow(c.type_code)) for c in cur.description or ()]
                        schema = pa.schema(fields)
                    if not rows:
                        break
                    # As Feast's job builds its table: column arrays typed by the schema of the cursor's types.
                    columns = list(zip(*rows, strict=True))
                    batches.append(
                        pa.RecordBatch.from_arrays(
                            [pa.array(list(col), type=f.type) for col, f in zip(columns, schema, strict=True)],
                            schema=schema,
                        )
                    )
                    del rows, columns
            conn.rollback()
        assert schema is not None
        return pa.Table.from_batches(batches, schema=schema)


class FitrecPostgreSQLOfflineStore(PostgreSQLOfflineStore):
    @staticmethod
    def get_historical_features(*args: Any, **kwargs: Any) -> HashJoinRetrievalJob:  # type: ignore[override]
        job = PostgreSQLOfflineStore.get_historical_features(*args, **kwargs)
        assert isinstance(job, PostgreSQLRetrievalJob)
        return HashJoinRetrievalJob(
            query=job._query_generator,
            config=job.config,
            full_feature_names=job.full_feature_names,
            on_demand_feature_views=job.on_demand_feature_views,
            metadata=job.metadata,
        )
