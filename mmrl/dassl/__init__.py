"""A lean training engine with Dassl's public interface.

Lineage trainers written against ``dassl.*`` run on it after changing the
import prefix to ``mmrl.dassl.*``. The engine knows nothing about CLIP.
"""

__version__ = "0.1.0"
