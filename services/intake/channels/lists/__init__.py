"""Compiled lists (CSV, XLSX): read in a child process, uploaded as import jobs over HTTP."""
