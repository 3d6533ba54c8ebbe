"""The pure parts of retrieval: extracting and chunking documents, and fusing rankings. The knowledge base's SQL
(`shared.db.knowledge`) and service (`shared.knowledge`) both build on them."""
