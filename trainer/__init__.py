"""`python -m trainer`: produce, measure and export the models the app ships."""
