"""Duplex systems: everything that talks, one 80 ms frame in, one frame out."""

from .base import BatchedDuplexSystem, DuplexSystem, Frame

__all__ = ["BatchedDuplexSystem", "DuplexSystem", "Frame"]
