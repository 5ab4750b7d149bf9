module micro

go 1.26
