"""Celery's Redis result backend with the base backend's chord handling.

A producer whose backend has no native chords (database, MongoDB, memcached, ...) applies a
chord by sending `celery.chord_unlock`, which polls the header's results and sends the body.
This class makes a Redis producer take exactly that path, so the message rcelery receives is
the one Celery's own `fallback_chord_unlock` publishes; the workers keep the plain Redis
backend (no chord size is recorded, so header tasks do not fire the body themselves).
"""
from celery.backends.base import Backend
from celery.backends.redis import RedisBackend


class RedisBackendWithoutNativeChords(RedisBackend):
    """Chords go through `celery.chord_unlock`, as on every backend without native chords."""

    apply_chord = Backend.apply_chord
    set_chord_size = Backend.set_chord_size
    on_chord_part_return = Backend.on_chord_part_return
