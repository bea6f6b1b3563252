"""The web app (`wsovvis app`): Gradio tabs over autolabel, review and run metrics."""
