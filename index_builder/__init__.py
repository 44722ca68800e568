"""Knowledge base loading, passage splitting, encoders, hybrid indexes and retrieval.

Plain Python with no Rasa imports: the action server and the web copilot both use
`index_builder.retriever.Retriever`.
"""
