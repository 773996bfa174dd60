module edgeha.local/agent

go 1.22
