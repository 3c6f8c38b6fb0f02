"""Probes of what a representation encodes. ``metrics``/``targets``/``engine`` are engine-free;
``fanout`` runs them as Ray tasks."""
