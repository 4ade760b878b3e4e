"""The workspace's services, used by tuning, generation, insight and the pages alike.

* ``store``: the catalog (SQLite) of datasets and runs, their folders, atomic file writes.
* ``jobs``: background jobs (one at a time per workspace), progress snapshots, heartbeat, cancel.
* ``run_folder``: the one owner of a run folder's layout (spec, results, vectors, model paths).
"""
