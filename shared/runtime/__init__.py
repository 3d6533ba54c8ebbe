"""The runtime spine: a LangGraph graph executed one function at a time, chained by QStash."""
