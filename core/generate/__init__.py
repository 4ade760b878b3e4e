"""Training questions generated from the user's own passages.

* :mod:`core.generate.llm`: questions from any OpenAI-compatible chat-completions endpoint
  (the official ``openai`` client), parallel with a cap, retried, cached, resumable.
* :mod:`core.generate.faults`: every fault of an endpoint as one
  :class:`~core.generate.faults.GenerationError` with one message for the user.
* :mod:`core.generate.parse`: questions out of a model's free-form answer.
* :mod:`core.generate.cache`: answers on disk (SQLite), keyed by (passage, prompt, model, n).
* :mod:`core.generate.offline`: methods that need only the passages (inverse cloze,
  cropping, keyword queries), deterministic given a seed.
* :mod:`core.generate.tsdae`: TSDAE domain adaptation on the passages alone.
* :mod:`core.generate.filters`: round-trip, duplicates, length and copy filters, with counts.
* :mod:`core.generate.pairs`: the :class:`~core.generate.pairs.GeneratedQuestion` record,
  and generated questions -> ``QADataset`` / pair file (CSV).
* :mod:`core.generate.job`: generation as a background run of the store (``GenerationSpec`` ->
  generate -> filter -> the run folder), the pipeline the CLI's ``generate`` calls too.
* :mod:`core.generate.review`: the review table of a run's questions; the kept ones -> the training split.
* :mod:`core.generate.labels`: the labelling bench (a blind pool of candidates from BM25, the
  base model and any other ranker, plus keyword search over every passage; labels written at
  once into the evaluation split) and what N labelled questions can tell apart.
* :mod:`core.generate.judgments`: every passage the expert judged for a question, relevant or
  not, and how it was found (``judgments.json`` of the dataset).

Nothing here imports Streamlit; heavy libraries (openai, torch, sentence-transformers) are
imported inside the functions that need them.
"""
