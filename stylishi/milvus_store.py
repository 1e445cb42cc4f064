"""The catalog's vectors in a Milvus collection, through pymilvus' `MilvusClient` (optional: requirements-scale.txt).

One client code for three deployments, chosen by URI: a local file ending in `.db` (Milvus Lite, embedded: tests and
development), or `http(s)://host:19530` (Milvus standalone, a cluster, or a managed one; token from MILVUS_TOKEN).

The collection: `row` (INT64 primary key = the item's row in items.parquet), `vec` (FLOAT_VECTOR, unit length,
metric IP = cosine) and one VARCHAR field per filterable metadata column, each with a scalar index. Filters are
Milvus boolean expressions built only from canonical catalog values, each one escaped string literal, so a value
such as `Red" or colour != "` can never change what is searched (Milvus Lite has no template parameters).

Faults are said in one sentence naming the URI and the fix: at start (collection missing, dim/count/model not
matching the manifest, server unreachable) as ArtifactError / StoreUnavailableError; while serving, each query gets a
StoreUnavailableError and the next query reconnects by itself.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Mapping
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pandas as pd

from .errors import ArtifactError, StyliShiError
from .store import Selection, StoreUnavailableError, pad_results

log = logging.getLogger(__name__)

KIND = "milvus"
DEFAULT_COLLECTION = "stylishi_catalog"
TOKEN_ENV = "MILVUS_TOKEN"
URI_ENV = "STYLISHI_MILVUS_URI"
ROW, VEC = "row", "vec"
PROPERTY = "stylishi."
INSERT_BATCH = 5_000
CONNECT_TIMEOUT_S = 5.0
QUERY_TIMEOUT_S = 10.0
# Same size thresholds as the FAISS path (stylishi.index.choose_factory).
FLAT_MAX_ITEMS = 20_000
HNSW_MAX_ITEMS = 400_000
INSTALL_HINT = "Install the scale extra: .venv/bin/pip install -r requirements-scale.txt"


def available() -> bool:
    """Is pymilvus installed (the scale extra)?"""
    try:
        import pymilvus  # noqa: F401
    except ImportError:
        return False
    return True


def _pymilvus():
    try:
        import pymilvus
    except ImportError:
        raise StyliShiError(f"This index is served from Milvus, but pymilvus is not installed. {INSTALL_HINT}") from None
    return pymilvus


def choose_index(n: int) -> dict[str, Any]:
    """Index type and params by catalog size, like the FAISS path: exact, then a graph, then inverted lists."""
    if n <= FLAT_MAX_ITEMS:
        return {"index_type": "FLAT", "params": {}, "search_params": {}}
    if n <= HNSW_MAX_ITEMS:
        return {"index_type": "HNSW", "params": {"M": 32, "efConstruction": 128}, "search_params": {"ef": 64}}
    nlist = int(4 * np.sqrt(n)) // 8 * 8
    return {"index_type": "IVF_SQ8", "params": {"nlist": nlist}, "search_params": {"nprobe": 16}}


def is_lite(uri: str) -> bool:
    return not str(uri).startswith(("http://", "https://", "tcp://", "unix:"))


def public_uri(uri: str) -> str:
    """The URI without user, password or query string: what a manifest, a log or a page may show."""
    uri = str(uri)
    if is_lite(uri):
        return uri
    parts = urlsplit(uri)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def resolve_uri(uri: str, root: str | Path | None = None) -> str:
    """A relative Milvus Lite file is relative to the artifact folder (so the folder can move with its .db)."""
    if is_lite(uri) and root is not None and not Path(uri).is_absolute():
        return str((Path(root) / uri).resolve())
    return str(uri)


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def string_literal(value: str) -> str:
    """A Milvus double-quoted string literal holding exactly `value` (C-style escapes, which Milvus and Milvus Lite
    both read); other control characters are refused rather than guessed at."""
    value = str(value)
    if any(ord(ch) < 32 and ch not in "\n\r\t" for ch in value):
        raise StyliShiError(f"The filter value {value[:40]!r} holds a control character Milvus cannot express.")
    return '"' + "".join(_ESCAPES.get(ch, ch) for ch in value) + '"'


def filter_expression(values: Mapping[str, Iterable[str]], fields: Iterable[str]) -> str:
    """A Milvus boolean expression for `values` (OR within a column, AND across), e.g.
    `colour in ["Red", "Blue"] and gender in ["Women"]`.

    Field names must be fields of the collection (identifiers, from the catalog's fixed FILTERABLE list); each value
    is one escaped string literal, so no value can change the expression's structure.
    """
    known = set(fields)
    parts = []
    for column, wanted in values.items():
        if column not in known or not column.isidentifier():
            raise StyliShiError(f"The Milvus collection has no filter field {str(column)[:40]!r}.")
        parts.append(f"{column} in [{', '.join(string_literal(v) for v in wanted)}]")
    return " and ".join(parts)


class MilvusStore:
    """A catalog collection in Milvus; thread-safe; reconnects by itself after the server comes back."""

    kind = KIND

    def __init__(self, uri: str, collection: str = DEFAULT_COLLECTION, *, token: str | None = None,
                 search_params: Mapping[str, Any] | None = None, index: Mapping[str, Any] | None = None):
        _pymilvus()
        self.uri = str(uri)
        self.collection = collection
        self._token = token if token is not None else os.environ.get(TOKEN_ENV, "")
        self.search_params = dict(search_params or {})
        self.index_info = dict(index or {})
        self._client = None
        self._lock = threading.Lock()
        self._fields: list[str] | None = None
        self._count: int | None = None
        self._dim: int | None = None
        self._description: dict[str, Any] = {}

    # -- connection ----------------------------------------------------------------------------------------
    def _connect(self):
        from pymilvus import MilvusClient

        if is_lite(self.uri):
            # The embedded Lite server logs a traceback for each RPC it does not implement (AllocTimestamp, which
            # pymilvus asks for while waiting on an index and then does without): noise, not a fault.
            logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
        # pymilvus logs a full traceback for every failed RPC; the one line that matters is ours (_unavailable).
        logging.getLogger("pymilvus.decorators").setLevel(logging.CRITICAL)
        with self._lock:
            if self._client is None:
                kwargs: dict[str, Any] = {"timeout": CONNECT_TIMEOUT_S}
                if self._token:
                    kwargs["token"] = self._token
                try:
                    self._client = MilvusClient(self.uri, **kwargs)
                except Exception as exc:  # pymilvus raises MilvusException, grpc errors or OSError
                    raise self._unavailable(exc) from None
            return self._client

    def _unavailable(self, exc: BaseException) -> StoreUnavailableError:
        if is_lite(self.uri):
            return StoreUnavailableError(
                f"The Milvus Lite file {self.uri} cannot be opened ({_short(exc)}). Milvus Lite serves one process at "
                "a time: stop the other process using it (a build, another app), or serve from a Milvus server "
                f"(--milvus-uri / {URI_ENV}, docs/scale.md).")
        return StoreUnavailableError(
            f"The Milvus vector store at {public_uri(self.uri)} cannot be reached ({_short(exc)}). Check that Milvus is "
            f"running there (or give another address with --milvus-uri / {URI_ENV}); search works again as soon as "
            "it is back.")

    def _call(self, method: str, *args, **kwargs):
        """One client call; a lost connection becomes a StoreUnavailableError and the next call reconnects."""
        client = self._connect()
        try:
            try:
                return getattr(client, method)(*args, **kwargs)
            except Exception as exc:
                # A restarted server holds the collection released (not in memory): load it again, once.
                if not _is_not_loaded(exc) or not self._call_loaded(client):
                    raise
                return getattr(client, method)(*args, **kwargs)
        except Exception as exc:
            if _is_connection_error(exc):
                self._drop()
                error = self._unavailable(exc)
                log.warning("%s", error)
                raise error from None
            raise

    def _call_loaded(self, client) -> bool:
        log.warning("Milvus collection %r at %s was not loaded (server restarted?): loading it", self.collection,
                    public_uri(self.uri))
        client.load_collection(self.collection)
        return True

    def _drop(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # already gone
                pass

    def close(self) -> None:
        """Close the connection; for a Lite file also stop its embedded server, so another process can open it."""
        self._drop()
        if is_lite(self.uri):
            try:
                from milvus_lite.server_manager import server_manager_instance

                server_manager_instance.release_server(self.uri)
            except Exception:  # an older milvus-lite without it: released at exit
                pass

    # -- building ------------------------------------------------------------------------------------------
    @classmethod
    def build(cls, uri: str, collection: str, vectors: np.ndarray, metadata: pd.DataFrame, *, model_id: str,
              filter_columns: Iterable[str] = (), token: str | None = None,
              index: Mapping[str, Any] | None = None) -> "MilvusStore":
        """(Re)create `collection` from unit vectors (row i = item i) and their filterable metadata columns."""
        from pymilvus import DataType

        vectors = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
        n, dim = vectors.shape
        if len(metadata) != n:
            raise ValueError(f"vectors ({n}) and metadata ({len(metadata)}) differ in length")
        index = dict(index or choose_index(n))
        store = cls(uri, collection, token=token, search_params=index.get("search_params"), index=index)
        columns = [c for c in filter_columns if c in metadata.columns and c.isidentifier() and c not in (ROW, VEC)]
        text = {c: metadata[c].map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
                for c in columns}
        client = store._connect()
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field(ROW, DataType.INT64, is_primary=True)
        schema.add_field(VEC, DataType.FLOAT_VECTOR, dim=dim)
        for c in columns:
            longest = max((len(s.encode()) for s in text[c]), default=1)
            schema.add_field(c, DataType.VARCHAR, max_length=min(65_535, max(16, 2 * longest)))
        params = client.prepare_index_params()
        params.add_index(field_name=VEC, index_type=index["index_type"], metric_type="IP", params=index["params"])
        for c in columns:
            params.add_index(field_name=c, index_type="INVERTED")
        if client.has_collection(collection):
            client.drop_collection(collection)
        # The index is declared with the collection (built as segments are sealed): a separate create_index waits on
        # AllocTimestamp, which Milvus Lite does not implement.
        client.create_collection(collection, schema=schema, index_params=params)
        # Who built it, as collection properties: checked against the manifest when an app opens it.
        client.alter_collection_properties(collection, properties={f"{PROPERTY}model": model_id,
                                                                   f"{PROPERTY}dim": str(dim),
                                                                   f"{PROPERTY}count": str(n)})
        for start in range(0, n, INSERT_BATCH):
            stop = min(n, start + INSERT_BATCH)
            rows = [{ROW: r, VEC: vectors[r].tolist(), **{c: text[c].iat[r] for c in columns}}
                    for r in range(start, stop)]
            client.insert(collection, rows)
        client.flush(collection)
        client.load_collection(collection)
        store._fields, store._count, store._dim = columns, n, dim
        store._description = {"model": model_id, "dim": dim, "count": n}
        return store

    # -- opening -------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, uri: str, collection: str, *, model_id: str, dim: int, count: int,
             search_params: Mapping[str, Any] | None = None, index: Mapping[str, Any] | None = None,
             token: str | None = None) -> "MilvusStore":
        """Connect and check the collection against the manifest; refuse with one message naming the fix."""
        store = cls(uri, collection, token=token, search_params=search_params, index=index)
        store.check(model_id=model_id, dim=dim, count=count)
        return store

    def check(self, *, model_id: str, dim: int, count: int) -> None:
        where = f"{self.collection!r} at {public_uri(self.uri)}"
        rebuild = f"Rebuild it: build_index.py ... --milvus {public_uri(self.uri)} --milvus-collection {self.collection}"
        if not self._call("has_collection", self.collection):
            raise ArtifactError(f"The Milvus collection {where} does not exist. {rebuild}, or point --milvus-uri at "
                                "the Milvus that holds it.")
        info = self._call("describe_collection", self.collection)
        props = info.get("properties") or {}
        built = {key[len(PROPERTY):]: value for key, value in props.items() if key.startswith(PROPERTY)}
        fields = {f["name"]: f for f in info.get("fields", [])}
        got_dim = int((fields.get(VEC, {}).get("params") or {}).get("dim", -1))
        if got_dim != dim:
            raise ArtifactError(f"The Milvus collection {where} holds {got_dim}-d vectors but the index manifest says "
                                f"{dim}-d: it belongs to another index. {rebuild}.")
        if built.get("model") != model_id:
            raise ArtifactError(f"The Milvus collection {where} was built with the model {built.get('model')!r}, not "
                                f"{model_id!r} as the index manifest says. {rebuild}.")
        self._call("load_collection", self.collection)
        got = self._count_rows()
        if got != count:
            raise ArtifactError(f"The Milvus collection {where} holds {got} items but the index manifest says "
                                f"{count}: it is incomplete or belongs to another build. {rebuild}.")
        self._fields = [n for n in fields if n not in (ROW, VEC)]
        self._count, self._dim, self._description = count, dim, built

    def _count_rows(self) -> int:
        res = self._call("query", self.collection, filter="", output_fields=["count(*)"], timeout=QUERY_TIMEOUT_S)
        return int(res[0]["count(*)"])

    # -- the VectorStore interface -------------------------------------------------------------------------
    def __len__(self) -> int:
        if self._count is None:
            self._count = self._count_rows()
        return self._count

    @property
    def dim(self) -> int:
        return int(self._dim or 0)

    @property
    def fields(self) -> list[str]:
        return list(self._fields or [])

    def search(self, queries: np.ndarray, k: int, selection: Selection | None = None,
               params: Mapping[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim == 1:
            queries = queries[None, :]
        k = max(1, min(int(k), len(self)))
        if selection is not None and len(selection.rows) == 0:
            return pad_results([[] for _ in queries], [[] for _ in queries], k)
        kwargs: dict[str, Any] = {"limit": k, "anns_field": VEC, "output_fields": [ROW], "timeout": QUERY_TIMEOUT_S,
                                  "search_params": {"metric_type": "IP", "params": {**self.search_params,
                                                                                     **dict(params or {})}}}
        if selection is not None and selection.values:
            kwargs["filter"] = filter_expression(selection.values, self.fields)
        hits = self._call("search", self.collection, data=[q.tolist() for q in queries], **kwargs)
        scores = [[float(h["distance"]) for h in per_query] for per_query in hits]
        rows = [[int(h["entity"][ROW]) for h in per_query] for per_query in hits]
        return pad_results(scores, rows, k)

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        rows = [int(r) for r in np.asarray(rows).reshape(-1)]
        got = self._call("get", self.collection, ids=rows, output_fields=[VEC], timeout=QUERY_TIMEOUT_S)
        by_row = {int(g[ROW]): g[VEC] for g in got}
        missing = [r for r in rows if r not in by_row]
        if missing:
            raise ArtifactError(f"The Milvus collection {self.collection!r} at {public_uri(self.uri)} has no row "
                                f"{missing[0]}: it does not match the index. Rebuild it with build_index.py --milvus.")
        return np.asarray([by_row[r] for r in rows], dtype=np.float32)

    def describe(self) -> dict[str, Any]:
        return {"kind": KIND, "uri": public_uri(self.uri), "collection": self.collection,
                "index_type": self.index_info.get("index_type"), "params": self.index_info.get("params", {}),
                "search_params": self.search_params, "metric": "IP", "count": len(self), "dim": self.dim,
                "model": self._description.get("model"), "filter_fields": self.fields}


def _is_connection_error(exc: BaseException) -> bool:
    """Server gone, not a bad request: gRPC unavailable/deadline, a closed channel, or a refused socket."""
    if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
        return True
    text = f"{type(exc).__name__} {exc}".lower()
    return any(s in text for s in ("unavailable", "deadline", "connect", "closed channel", "cannot invoke rpc",
                                   "timeout", "timed out", "socket", "fail to"))


def _is_not_loaded(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "released" in text or "not loaded" in text or "collection not loaded" in text


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:160]}" if text else type(exc).__name__


def wait_until_reachable(store: MilvusStore, timeout_s: float = 30.0) -> bool:
    """Poll until the store answers (tests and start-up scripts); True when it did."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            store._count_rows()
            return True
        except StoreUnavailableError:
            time.sleep(0.5)
    return False
