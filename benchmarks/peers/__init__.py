"""Side by side with other implementations (session-rec, RecBole), run from their own venvs."""
