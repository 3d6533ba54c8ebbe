"""One module per platform, each speaking through that platform's SDK (see `shared.publishing.ports`)."""
