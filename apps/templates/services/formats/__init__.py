"""Template formats: each module turns a template folder into what the generator renders."""
