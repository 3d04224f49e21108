"""Stages 3-4 as rooms: net (formats, networks) <- train <- infer <- evaluate <- routing."""
