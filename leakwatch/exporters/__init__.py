"""Exporters turn the watcher's latest `Report` into something other tools read."""
