"""The conversation layer of ShopSight: settings, logging, the CLI and (later) the turn engine."""
