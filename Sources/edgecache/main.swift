print("edgecache")
