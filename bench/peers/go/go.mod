module parleypeers

go 1.19
