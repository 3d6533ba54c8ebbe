"""A workspace's rights over its data (issue 7, India's DPDP Act): export everything it stored, erase it."""
