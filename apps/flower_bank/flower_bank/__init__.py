"""learnstrat notebook 04: the bank federation as a Flower app (ServerApp + ClientApp)."""
