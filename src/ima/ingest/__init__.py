"""The ingest stage: records in, posts committed to the store, each acknowledged.

`normalize` (a record → a flat post, or `RecordError`), `lang` and `flags` (what a post
is in and what it tries), `dedup` (fingerprints), `changes` (deletes, edits, counts,
cursors), `prepare` (the parallelizable part, in `worker_process`es) and `pipeline`
(the bounded queue, batches, commits and acknowledgements). Other stages go through
this face: `Pipeline`, `ingest`, `Ack`, `tune_gc`.
"""

from ima.ingest.pipeline import Ack, Pipeline, ingest, tune_gc

__all__ = ["Ack", "Pipeline", "ingest", "tune_gc"]
