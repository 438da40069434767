"""The search page for analysts (`corpusqa ui`): app.py is the Streamlit script, kept thin; the modules beside
it hold the logic (marking answers, uploads, feedback, downloads, settings) and are tested without Streamlit."""
