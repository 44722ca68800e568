"""The assistant's core in plain Python (no Rasa imports): what a turn means and how to
answer it. Conversation context, clarifying questions and cited answers (`dialogue`,
`answers`), 一件事 eligibility (`bundles`, `eligibility`), the SQLite stores (`stores`) and
personal-data masking (`privacy`). actions/ adapts it for Rasa; web/ uses it directly."""
