"""Sources: where raw records come from (files now; live services build on the same schema)."""
