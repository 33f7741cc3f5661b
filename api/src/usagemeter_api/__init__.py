"""usagemeter api."""
