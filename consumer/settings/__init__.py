"""Every setting, its default and its environment variable, validated at start-up."""
