"""The workspace knowledge base: ingesting resources, extracting and chunking text, hybrid search."""
