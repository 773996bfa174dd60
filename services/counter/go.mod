module edgeha.local/counter

go 1.19
