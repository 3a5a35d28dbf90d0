package firmware

// MaxImageSize is the capacity of the slot an install would write now
// (the inactive one): the largest image an upload may carry. API layers
// use it as their request body limit.
func (s *Service) MaxImageSize() (int64, error) {
	st := s.images.State()
	dev, err := s.device(st.Active.Other(), false)
	if err != nil {
		return 0, err
	}
	defer dev.Close()
	return dev.Info().Size, nil
}
