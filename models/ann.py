"""Maximum inner product search over item vectors: exact (numpy) up to a size, an HNSW index (faiss) beyond.

`InnerProductIndex.build(vectors, exact_max_items=...)` keeps the vectors and, when there are more of them
than `exact_max_items`, an HNSW graph from faiss (`faiss-cpu`: prebuilt wheels, maintained by Meta; hnswlib
has no wheels for this Python and would need a compiler). HNSW searches a metric space, so inner products
are turned into Euclidean distances by the usual MIPS reduction (Bachrach et al. 2014): every item vector
gets one more coordinate sqrt(M² - |v|²) (M the largest norm) and queries a 0 there, so
|q - v'|² = |q|² + M² - 2 q·v and the nearest items are the ones of largest inner product, whatever the
norms (for unit vectors the extra coordinate is 0 and this is plain cosine search).

Persistence without pickle: `save` writes the vectors with `np.savez` and the graph with faiss's own
`write_index` binary format; `load` reads them back (or rebuilds the graph when its file is missing).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Self

import numpy as np

VECTORS_FILE = "ann_vectors.npz"
GRAPH_FILE = "ann_hnsw.faiss"
META_FILE = "ann.json"
# Query blocks of the exact search are at most this many floats (queries × items).
_BLOCK_FLOATS = 1 << 22


def _faiss() -> Any:
    import faiss

    return faiss


class InnerProductIndex:
    """The k items of largest inner product with each query; exact or HNSW by catalogue size."""

    def __init__(
        self,
        vectors: np.ndarray,
        *,
        exact_max_items: int = 50_000,
        hnsw_m: int = 32,
        ef_construction: int = 200,
        ef_search: int = 128,
        threads: int = 1,
        graph: Any = None,
    ) -> None:
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.exact_max_items = exact_max_items
        self.hnsw_m, self.ef_construction, self.ef_search, self.threads = hnsw_m, ef_construction, ef_search, threads
        self.max_norm = float(np.linalg.norm(self.vectors, axis=1).max()) if len(self.vectors) else 0.0
        self._graph = graph
        self._groups: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        if self.approximate:
            self._groups, distinct = self._duplicates()
            if self._graph is None:
                self._graph = self._build_graph(distinct)

    @classmethod
    def build(cls, vectors: np.ndarray, **options: Any) -> Self:
        return cls(vectors, **options)

    @property
    def approximate(self) -> bool:
        return len(self.vectors) > self.exact_max_items

    def _duplicates(self) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray] | None, np.ndarray]:
        """Identical vectors (items described by the same attributes only) enter the graph once: HNSW
        cannot link many copies of one point, and would lose most of them. Returns (None, vectors) without
        copies, else ((graph row of each item, items in graph-row order, first position of each graph row),
        the distinct vectors)."""
        distinct, first, inverse = np.unique(self.vectors, axis=0, return_index=True, return_inverse=True)
        if len(distinct) == len(self.vectors):
            return None, self.vectors
        # Graph rows in order of first appearance, so results keep the catalogue's order among equals.
        rank = np.empty(len(first), dtype=np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(len(first))
        graph_row = rank[inverse.ravel()]
        members = np.argsort(graph_row, kind="stable")
        starts = np.r_[0, np.cumsum(np.bincount(graph_row, minlength=len(first)))]
        return (graph_row, members, starts), self.vectors[np.sort(first)]

    def _build_graph(self, vectors: np.ndarray) -> Any:
        faiss = _faiss()
        faiss.omp_set_num_threads(self.threads)
        norms = np.linalg.norm(vectors, axis=1).astype(np.float64)
        extra = np.sqrt(np.maximum(self.max_norm**2 - norms**2, 0.0)).astype(np.float32)
        graph = faiss.IndexHNSWFlat(vectors.shape[1] + 1, self.hnsw_m, faiss.METRIC_L2)
        graph.hnsw.efConstruction = self.ef_construction
        graph.add(np.ascontiguousarray(np.hstack([vectors, extra[:, None]])))
        return graph

    def _expand(self, rows: np.ndarray, k: int) -> np.ndarray:
        """Graph rows -> item rows (each graph row stands for its copies), the first k per query."""
        if self._groups is None:
            return rows
        _, members, starts = self._groups
        safe = np.maximum(rows, 0)
        lengths = np.where(rows >= 0, starts[safe + 1] - starts[safe], 0)
        flat_rows = np.repeat(safe.ravel(), lengths.ravel())
        query = np.repeat(np.repeat(np.arange(rows.shape[0]), rows.shape[1]), lengths.ravel())
        entry_start = np.repeat(np.cumsum(lengths.ravel()) - lengths.ravel(), lengths.ravel())
        offset = np.arange(len(flat_rows)) - entry_start
        items = members[starts[flat_rows] + offset]
        row_start = np.r_[0, np.cumsum(lengths.sum(axis=1))][:-1]
        position = np.arange(len(items)) - row_start[query]
        out = np.full((rows.shape[0], k), -1, dtype=np.int64)
        keep = position < k
        out[query[keep], position[keep]] = items[keep]
        return out

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(item rows, inner products), each queries × k, best first; rows -1 / scores -inf fill short rows."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        k = min(k, len(self.vectors))
        if k <= 0 or len(queries) == 0:
            return np.empty((len(queries), 0), dtype=np.int64), np.empty((len(queries), 0))
        if not self.approximate:
            return self._exact(queries, k)
        faiss = _faiss()
        faiss.omp_set_num_threads(self.threads)
        self._graph.hnsw.efSearch = max(self.ef_search, 2 * k)
        padded = np.ascontiguousarray(np.hstack([queries, np.zeros((len(queries), 1), dtype=np.float32)]))
        _, rows = self._graph.search(padded, min(k, self._graph.ntotal))
        rows = self._expand(rows.astype(np.int64), k)
        found = rows >= 0
        scores = np.full(rows.shape, -np.inf)
        # Exact inner products of the rows found (the graph's distances are of the augmented vectors).
        scores[found] = np.einsum("ij,ij->i", np.repeat(queries, k, axis=0)[found.ravel()], self.vectors[rows[found]])
        order = np.argsort(-scores, axis=1, kind="stable")
        return np.take_along_axis(rows, order, axis=1), np.take_along_axis(scores, order, axis=1)

    def _exact(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        rows_out = np.empty((len(queries), k), dtype=np.int64)
        scores_out = np.empty((len(queries), k), dtype=np.float64)
        step = max(1, _BLOCK_FLOATS // max(1, len(self.vectors)))
        for start in range(0, len(queries), step):
            block = queries[start : start + step] @ self.vectors.T
            part = np.argpartition(-block, k - 1, axis=1)[:, :k]
            values = np.take_along_axis(block, part, axis=1)
            order = np.argsort(-values, axis=1, kind="stable")
            rows_out[start : start + step] = np.take_along_axis(part, order, axis=1)
            scores_out[start : start + step] = np.take_along_axis(values, order, axis=1)
        return rows_out, scores_out

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(directory / VECTORS_FILE, vectors=self.vectors)
        meta = {
            "exact_max_items": self.exact_max_items,
            "hnsw_m": self.hnsw_m,
            "ef_construction": self.ef_construction,
            "ef_search": self.ef_search,
            "threads": self.threads,
        }
        (directory / META_FILE).write_text(json.dumps(meta))
        if self._graph is not None:
            _faiss().write_index(self._graph, str(directory / GRAPH_FILE))

    @classmethod
    def load(cls, directory: Path) -> Self:
        directory = Path(directory)
        meta = json.loads((directory / META_FILE).read_text())
        with np.load(directory / VECTORS_FILE, allow_pickle=False) as arrays:
            vectors = arrays["vectors"]
        graph = _faiss().read_index(str(directory / GRAPH_FILE)) if (directory / GRAPH_FILE).exists() else None
        return cls(vectors, graph=graph, **meta)
