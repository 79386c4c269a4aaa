"""Conversations with memory, prompt interpolation, and tools."""
