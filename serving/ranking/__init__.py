"""The ranking path as a library: cache → candidates → online features → scorer → rules → top-k → reasons.

The serving app calls it per request and batch precompute (pipelines) calls it for every active user;
neither the app, its routes nor its state live here, and nothing here imports them.
"""
