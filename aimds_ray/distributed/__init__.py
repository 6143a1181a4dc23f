"""The distributed layer: Ray actors, the deadline scheduler actor, the Serve application and Ray Data jobs.

Each piece wraps a `aimds_ray.core` object; no algorithm is implemented here.
"""
