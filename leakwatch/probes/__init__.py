"""One module per signal: `census` (gc objects by type), `sites` (tracemalloc), `process` (psutil)."""
