"""Synthetic training sets: generation (resumable, shardable), its command and subprocess, reading, previews."""
