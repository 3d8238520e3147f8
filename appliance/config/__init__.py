"""The appliance configuration: YAML with line numbers -> one typed, validated model tree."""
