"""usagemeter collector."""
