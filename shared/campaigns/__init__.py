"""The campaign graph: plan, research, strategy, human approval, content, QA, payment, execution."""
