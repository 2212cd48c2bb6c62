"""Feast's PostgreSQL offline store, with its point-in-time query run under a planner setting it needs.

Feast's query joins CTEs whose row counts the planner cannot estimate (filters on
sub-query parameters): it guesses a couple of rows and joins the feature rows of
some ten thousand entity rows by nested loops, comparing billions of pairs (six
minutes for 40k training rows, measured). Without nested loops the same query
hashes and takes seconds. Everything else is Feast's: this subclass only runs
the retrieval job's query with `enable_nestloop = off` in its own session.

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


class FitrecPostgreSQLOfflineStoreConfig(PostgreSQLOfflineStoreConfig):
    type: Literal["features.pg_offline_store.FitrecPostgreSQLOfflineStore"] = STORE_TYPE  # type: ignore[assignment]


class HashJoinRetrievalJob(PostgreSQLRetrievalJob):
    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:
        with self._query_generator() as query, _get_conn(self.config.offline_store) as conn, conn.cursor() as cur:
            conn.read_only = True
            cur.execute("SET enable_nestloop = off")
            cur.execute(query)
            fields = [(c.name, pg_type_code_to_arrow(c.type_code)) for c in cur.description or ()]
            rows = cur.fetchall()
        # As Feast's job builds its table: column arrays typed by the schema of the cursor's types.
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in fields]
        return pa.Table.from_arrays([pa.array(list(col)) for col in columns], schema=pa.schema(fields))


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
