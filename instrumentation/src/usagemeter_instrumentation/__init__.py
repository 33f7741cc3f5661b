"""usagemeter instrumentation."""
