module github.com/smc-go/smc

go 1.26
