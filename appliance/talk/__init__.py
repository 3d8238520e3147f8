"""Two-way talk: what an operator says into the browser, heard at a camera's speaker or the box's AUDIO OUT."""
