"""Speed and memory of the library in process: data pipeline, training, scoring, serving."""
